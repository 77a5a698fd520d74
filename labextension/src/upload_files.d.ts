/**
 * The file name endings of an upload's model, params and labels files
 * (tfaas_jupyter/client/upload_files.json in the Python package), so the panel's file
 * picker and the notebook widget's accept the same files. Loaded as vocabulary.d.ts
 * explains.
 */
declare module '*/upload_files.json' {
  const endings: Record<'model' | 'params' | 'labels', string[]>;
  export default endings;
}
