import { LabIcon } from '@jupyterlab/ui-components';

/** The TFaaS mark: a tensor cube; `jp-icon3` follows the light and dark themes. */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 1.5 2.5 7v10L12 22.5 21.5 17V7L12 1.5zm0 2.3 7.2 4.1-2.6 1.5L12 6.8 7.4 9.4 4.8 7.9 12 3.8zM4.5 9.6l2.7 1.5v6.1l-2.7-1.6V9.6zm4.7 2.7 1.8 1v6.6l-1.8-1v-6.6zm3.8 7.6v-6.6l6.5-3.7v6.1L13 19.9z"/>
  </g>
</svg>`;

export const tfaasIcon = new LabIcon({ name: 'tfaas-jupyter:tfaas', svgstr });
