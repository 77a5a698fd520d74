/**
 * The shared vocabulary (tfaas_jupyter/client/vocabulary.json in the Python package),
 * so the panel and the notebook widget show the same words. The file lies outside
 * `rootDir`, so tsconfig keeps `resolveJsonModule` off: tsc leaves the import as it is
 * in lib/ (same depth as src/), and webpack (the build) and jest (the tests) load the
 * JSON itself.
 */
declare module '*/vocabulary.json' {
  const words: Record<string, string>;
  export default words;
}
