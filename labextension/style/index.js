import './base.css';
import './deployments.css';
import './experiments.css';
import './jobs.css';
import './detections.css';
import './templates.css';
import './gpus.css';
import './monitoring.css';
