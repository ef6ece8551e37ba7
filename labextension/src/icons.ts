import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="6" cy="6" r="3"/><circle cx="18" cy="6" r="3"/><circle cx="12" cy="18" r="3"/>
    <path d="M7.6 8.2 10.9 15.3l1.5-.7L9.2 7.5zM16.4 8.2l-3.3 7.1-1.5-.7 3.2-7.1z"/>
  </g>
</svg>`;

/** The MLOps sidebar icon (a small pipeline graph), themed like JupyterLab's own icons. */
export const mlopsIcon = new LabIcon({ name: 'jupyter-mlops:mlops', svgstr: svg });
