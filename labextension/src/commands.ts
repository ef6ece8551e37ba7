/**
 * Every command id of the extension, in one style: `jupyter-mlops:<verb>-<noun>`. Other
 * extensions (and the notifications' "Open" actions) run these ids; the palette shows labels.
 */
export namespace CommandIDs {
  /** Show the MLOps sidebar. */
  export const openSidebar = 'jupyter-mlops:open-sidebar';
  /** Bring the "Getting started" section back to the sidebar after it was dismissed or done. */
  export const showGettingStarted = 'jupyter-mlops:show-getting-started';
  /** Check the platform's components again. */
  export const refreshStatus = 'jupyter-mlops:refresh-status';
  /** Open what a notification links to (`{link}`). */
  export const openLink = 'jupyter-mlops:open-link';
  /** The dataset browser in the main area (`{name?, version?}`). */
  export const openDatasets = 'jupyter-mlops:open-datasets';
  /** An experiment's runs in the main area (`{experimentId}`). */
  export const openExperiment = 'jupyter-mlops:open-experiment';
  /** Reload the model registry section. */
  export const refreshModels = 'jupyter-mlops:refresh-models';
  /** Submit the notebook or script of the current tab as a job. */
  export const submitCurrentAsJob = 'jupyter-mlops:submit-current-as-job';
  /** Reload the jobs section. */
  export const refreshJobs = 'jupyter-mlops:refresh-jobs';
  /** A job's detail and log (`{id}`). */
  export const openJob = 'jupyter-mlops:open-job';
  /** A sweep's trials (`{id}`). */
  export const openSweep = 'jupyter-mlops:open-sweep';
  /** A pipeline's steps (`{id}`). */
  export const openPipeline = 'jupyter-mlops:open-pipeline';
  /** Reload the deployments section (`{name?}`: the deployment a notification is about). */
  export const refreshDeployments = 'jupyter-mlops:refresh-deployments';
}
