/** Kept for imports not yet moved to `./api/request`. */
export { MlopsError, requestAPI } from './api/request';
