import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { Button, HTMLSelect, ReactWidget, SidePanel } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { CommandIDs } from '../commands';
import { ErrorLine } from '../components/errorLine';
import { TextField } from '../components/fields';
import {
  folderStatus,
  getDataset,
  getPublishJob,
  IDataset,
  IDatasetFile,
  IDatasetVersion,
  IPublishJob,
  listDatasets,
  listVersionFiles,
  publishVersion,
  uploadFile
} from '../api/datasets';
import { MlopsError } from '../api/request';

export type { IDatasetFile, IDatasetVersion } from '../api/datasets';
import { labPoller } from '../poller';
import { VersionTags } from './datasets_tags';
import { Summary, fmtBytes } from './datasets_summary';
import { LineageView, setLineageApp } from './lineage';
import { openDatasetDiff } from '../views/datasetDiff';
import { openImageViewer } from '../views/imageViewer';
import { Thumb } from '../views/thumb';

const PAGE = 48;

/** Where a thumbnail sits: its index among `total` images of the grid's `split` ('' for all). */
type OpenImage = (f: IDatasetFile, index: number, total: number, split: string) => void;

function Grid(props: { dataset: string; version: string; onOpen: OpenImage }) {
  const [page, setPage] = useState(0);
  const [split, setSplit] = useState('');
  const [data, setData] = useState<{ total: number; files: IDatasetFile[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setPage(0), [props.dataset, props.version, split]);
  useEffect(() => {
    let current = true; // until the page, split or version changes
    const q = { offset: page * PAGE, limit: PAGE, kind: 'image', split };
    listVersionFiles(props.dataset, props.version, q)
      .then(d => {
        if (current) {
          setData(d);
          setError(null);
        }
      })
      .catch((e: MlopsError) => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [props.dataset, props.version, page, split]);
  const pages = data ? Math.max(1, Math.ceil(data.total / PAGE)) : 1;
  return (
    <div>
      <div className="jp-mlops-ds-toolbar">
        <HTMLSelect
          className="jp-mlops-select"
          value={split}
          onChange={e => setSplit(e.target.value)}
          aria-label="Split"
        >
          <option value="">all images</option>
          <option value="train">train</option>
          <option value="val">val</option>
          <option value="test">test</option>
        </HTMLSelect>
        <Button small minimal disabled={page === 0} onClick={() => setPage(page - 1)}>
          ‹ Prev
        </Button>
        <span className="jp-mlops-muted">
          page {page + 1} / {pages} · {data?.total ?? '…'} images
        </span>
        <Button small minimal disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>
          Next ›
        </Button>
      </div>
      <ErrorLine error={error} />
      <div className="jp-mlops-ds-grid" data-testid="dataset-grid">
        {data?.files.map((f, i) => (
          <Thumb
            key={f.path}
            file={f}
            onOpen={() => props.onOpen(f, page * PAGE + i, data.total, split)}
          />
        ))}
      </div>
    </div>
  );
}

/** Two versions to compare; the comparison opens in a main-area tab of its own. */
function Diff(props: {
  dataset: string;
  versions: IDatasetVersion[];
  onCompare: (from: string, to: string) => void;
}) {
  const names = props.versions.map(v => v.version);
  const [from, setFrom] = useState(names[1] || names[0] || '');
  const [to, setTo] = useState(names[0] || '');
  const pick = (value: string, set: (v: string) => void, label: string) => (
    <HTMLSelect
      className="jp-mlops-select"
      value={value}
      onChange={e => set(e.target.value)}
      aria-label={label}
    >
      {names.map(n => (
        <option key={n}>{n}</option>
      ))}
    </HTMLSelect>
  );
  return (
    <div className="jp-mlops-ds-toolbar" data-testid="dataset-diff-pick">
      {pick(from, setFrom, 'From version')} → {pick(to, setTo, 'To version')}
      <Button
        small
        disabled={!from || !to || from === to}
        onClick={() => props.onCompare(from, to)}
      >
        Compare
      </Button>
    </div>
  );
}

function Publish(props: { dataset: string; onDone: (name: string) => void }) {
  const [name, setName] = useState(props.dataset || '');
  const [folder, setFolder] = useState('');
  const [message, setMessage] = useState('');
  const [seed, setSeed] = useState('');
  const [tool, setTool] = useState('');
  const [files, setFiles] = useState<FileList | null>(null);
  const [progress, setProgress] = useState<{ label: string; value: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const follow = async (job: IPublishJob) => {
    while (job.state === 'running') {
      const frac = job.total ? job.done / job.total : 0;
      setProgress({ label: `${job.phase} ${job.done}/${job.total}`, value: frac });
      await new Promise(r => setTimeout(r, 400));
      job = await getPublishJob(job.id);
    }
    if (job.state === 'failed') {
      throw new MlopsError(400, job.error || 'publish failed');
    }
    setProgress({ label: `published ${job.version?.version}`, value: 1 });
    props.onDone(name);
  };

  const body = () => ({
    message,
    ...(seed !== '' ? { split: { seed: Number(seed) } } : {}),
    ...(tool.trim() ? { tool: tool.trim() } : {})
  });

  const [status, setStatus] = useState<string | null>(null);
  const checkStatus = async () => {
    setError(null);
    try {
      const s = await folderStatus(name, folder);
      setStatus(
        `against ${s.version}: ${s.added.length} added, ${s.modified.length} modified, ` +
          `${s.removed.length} removed, ${s.unchanged} unchanged (${s.rehashed} files hashed)`
      );
    } catch (e: any) {
      setError(e.message);
      setStatus(null);
    }
  };

  const start = async (kind: 'folder' | 'upload') => {
    setBusy(true);
    setError(null);
    setStatus(null); // about to change: an earlier answer would be stale
    try {
      let payload: any = { ...body(), folder };
      if (kind === 'upload') {
        if (!files || files.length === 0) {
          throw new MlopsError(400, 'choose files to upload first');
        }
        const session = `up-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
        const total = Array.from(files).reduce((s, f) => s + f.size, 0);
        let sent = 0;
        for (const f of Array.from(files)) {
          const rel = (f as any).webkitRelativePath || f.name;
          await uploadFile(session, rel, f);
          sent += f.size;
          setProgress({
            label: `uploading ${fmtBytes(sent)} / ${fmtBytes(total)}`,
            value: sent / total
          });
        }
        payload = { ...body(), upload: session };
      }
      const job = await publishVersion(name, payload);
      await follow(job);
    } catch (e: any) {
      setError(e.message);
      setProgress(null);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="jp-mlops-ds-publish" onSubmit={e => e.preventDefault()}>
      <TextField label="Dataset name" value={name} onChange={setName} />
      <TextField label="Message" value={message} onChange={setMessage} />
      <TextField
        label="Split seed (optional: 80/10/10 train/val/test; empty keeps the previous version's split)"
        value={seed}
        inputMode="numeric"
        onChange={setSeed}
      />
      <TextField
        label="Annotation tool (optional, recorded with each changed image)"
        value={tool}
        placeholder="e.g. napari 0.5"
        onChange={setTool}
      />
      <TextField
        label="Workspace folder"
        value={folder}
        placeholder="e.g. data/cells"
        onChange={setFolder}
      />
      <div className="jp-mlops-ds-toolbar">
        <Button disabled={busy || !name} onClick={() => void start('folder')}>
          Publish folder
        </Button>
        <Button minimal disabled={busy || !name} onClick={() => void checkStatus()}>
          What changed?
        </Button>
      </div>
      {status && (
        <div className="jp-mlops-muted" data-testid="folder-status">
          {status}
        </div>
      )}
      <label>
        …or upload files
        <input
          type="file"
          className="jp-mod-styled"
          multiple
          aria-label="Files to upload"
          onChange={e => setFiles(e.target.files)}
        />
      </label>
      <Button disabled={busy || !name} onClick={() => void start('upload')}>
        Upload and publish
      </Button>
      {progress && (
        <div className="jp-mlops-ds-progress">
          <progress max={1} value={progress.value} aria-label="Publish progress" />
          <span>{progress.label}</span>
        </div>
      )}
      <ErrorLine error={error} />
    </form>
  );
}

/** Browse the catalog: datasets, versions, images, diffs; publish new versions. */
export function DatasetsView(props: {
  app: JupyterFrontEnd;
  initial?: { name: string; version: string };
}): JSX.Element {
  const [list, setList] = useState<IDataset[]>([]);
  const [name, setName] = useState(props.initial?.name ?? '');
  const [ds, setDs] = useState<IDataset | null>(null);
  const [version, setVersion] = useState(props.initial?.version ?? '');
  const [tab, setTab] = useState<'images' | 'diff' | 'lineage' | 'tags' | 'publish'>('images');
  const [reload, setReload] = useState(0);
  const shown = useRef(''); // the dataset whose versions are shown
  const [error, setError] = useState<string | null>(null);

  const loadList = useCallback(async (select?: string, live = false) => {
    try {
      const r = await listDatasets();
      if (select) {
        shown.current = ''; // just published: show its newest version
      }
      setList(r.datasets);
      if (live) {
        setReload(n => n + 1); // a poll keeps the chosen version (as when tags moved)
      }
      setError(null);
      setName(n => select || n || r.datasets[0]?.name || '');
    } catch (e: any) {
      setError(e.message);
    }
  }, []);
  useEffect(() => void loadList(), [loadList]);
  // new datasets, versions and tags show at each poll of the shared poller, like every panel
  useEffect(() => {
    const onTick = () => void loadList(undefined, true);
    labPoller.ticked.connect(onTick);
    return () => {
      labPoller.ticked.disconnect(onTick);
    };
  }, [loadList]);
  useEffect(() => {
    if (!name) {
      return;
    }
    // A slower answer for the dataset chosen before must not overwrite this one's.
    let superseded = false;
    getDataset(name)
      .then(d => {
        if (superseded) {
          return;
        }
        // keep the chosen version when the same dataset loads again (a poll, tags moved), or
        // the one asked for when opened; another dataset shows its newest
        const again = shown.current === name;
        shown.current = name;
        setDs(d);
        setVersion(v =>
          d.versions?.some(x => x.version === v) &&
          d.name === name &&
          (again || (props.initial?.name === name && props.initial.version === v))
            ? v
            : d.versions?.[0]?.version || ''
        );
      })
      .catch((e: MlopsError) => !superseded && setError(e.message));
    return () => {
      superseded = true;
    };
  }, [name, list, reload]);

  // nothing of the previous dataset is shown while the chosen one loads
  const current = ds?.name === name ? ds.versions?.find(v => v.version === version) : undefined;
  return (
    <div className="jp-mlops-datasets">
      <ErrorLine error={error} />
      <div className="jp-mlops-ds-toolbar">
        <HTMLSelect
          className="jp-mlops-select"
          value={name}
          onChange={e => setName(e.target.value)}
          aria-label="Dataset"
        >
          {list.length === 0 && <option value="">no datasets yet</option>}
          {list.map(d => (
            <option key={d.name} value={d.name}>
              {d.name} ({d.project})
            </option>
          ))}
        </HTMLSelect>
        {ds?.versions?.length ? ( // no empty, unexplained choice before a dataset has versions
          <HTMLSelect
            className="jp-mlops-select"
            value={version}
            onChange={e => setVersion(e.target.value)}
            aria-label="Version"
          >
            {ds.versions.map(v => (
              <option key={v.version} value={v.version}>
                {v.version}
                {v.tags.length ? ` · ${v.tags.join(', ')}` : ''}
              </option>
            ))}
          </HTMLSelect>
        ) : null}
      </div>
      {current && <Summary v={current} />}
      <div className="jp-mlops-ds-tabs" role="tablist">
        {(['images', 'diff', 'lineage', 'tags', 'publish'] as const).map(t => (
          <Button
            minimal
            small
            key={t}
            role="tab"
            aria-selected={tab === t}
            className={tab === t ? 'jp-mod-active' : ''}
            onClick={() => setTab(t)}
          >
            {
              {
                images: 'Images',
                diff: 'Diff',
                lineage: 'Lineage',
                tags: 'Tags',
                publish: 'Publish'
              }[t]
            }
          </Button>
        ))}
      </div>
      {tab === 'images' && current && (
        <Grid
          dataset={name}
          version={version}
          onOpen={(f, index, total, split) =>
            openImageViewer(props.app, { dataset: name, version, split }, index, f, total)
          }
        />
      )}
      {tab === 'diff' && ds?.versions && (
        <Diff
          dataset={name}
          versions={ds.versions}
          onCompare={(from, to) => openDatasetDiff(props.app, name, from, to)}
        />
      )}
      {tab === 'lineage' && current && (
        <LineageView source={{ kind: 'dataset', name, version: current.version }} />
      )}
      {tab === 'tags' && ds && current && (
        <VersionTags
          dataset={name}
          version={version}
          tags={ds.tags}
          referencedBy={ds.referenced_by || []}
          onChanged={() => setReload(r => r + 1)}
        />
      )}
      {tab === 'publish' && <Publish dataset={name} onDone={n => void loadList(n)} />}
    </div>
  );
}

/** The datasets section of the MLOps sidebar (also opened in the main area, wider). */
export class DatasetsPanel extends ReactWidget {
  constructor(
    private app: JupyterFrontEnd,
    private initial?: { name: string; version: string }
  ) {
    super();
    this.addClass('jp-mlops-section');
    this.addClass('jp-mlops-datasets-panel');
    this.title.label = 'Datasets';
  }

  render(): JSX.Element {
    return <DatasetsView app={this.app} initial={this.initial} />;
  }
}

/**
 * Add the datasets section to the MLOps sidebar and the command opening the wider browser
 * in the main area (`mlops:open-datasets`).
 */
export function registerDatasets(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null
): void {
  sidebar.addWidget(new DatasetsPanel(app));
  setLineageApp(app);
  const command = CommandIDs.openDatasets;
  app.commands.addCommand(command, {
    label: 'MLOps: open the dataset browser',
    // with {name, version}: that dataset version (a lineage node opens it so)
    execute: args => {
      const initial =
        typeof args.name === 'string' && typeof args.version === 'string'
          ? { name: args.name, version: args.version }
          : undefined;
      const content = new DatasetsPanel(app, initial);
      content.removeClass('jp-mlops-section');
      content.addClass('jp-mlops-datasets-main');
      const widget = new MainAreaWidget({ content });
      widget.id = `jp-mlops-datasets-${Date.now()}`;
      widget.title.label = 'Datasets';
      widget.title.closable = true;
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    }
  });
  palette?.addItem({ command, category: 'MLOps' });
}
