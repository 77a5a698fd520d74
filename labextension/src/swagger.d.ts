/**
 * swagger-ui-dist ships no types: its bundle (a UMD module) exports the SwaggerUIBundle
 * function, and its stylesheet is loaded by the build's CSS loader.
 */
declare module 'swagger-ui-dist/swagger-ui-bundle.js' {
  const SwaggerUIBundle: (options: Record<string, unknown>) => unknown;
  export default SwaggerUIBundle;
}
declare module 'swagger-ui-dist/swagger-ui.css';
