/**
 * Swagger UI's bundle and style, copied as they are to static/swagger/: the API
 * explorer page the server serves outside Lab's panel (tfaas/explorer/) loads them
 * from there, so the one Swagger UI the extension bundles serves both.
 */
const { rspack } = require('@rspack/core');

module.exports = {
  plugins: [
    new rspack.CopyRspackPlugin({
      patterns: ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE'].map(file => ({
        from: require.resolve(`swagger-ui-dist/${file}`),
        to: `swagger/${file}`
      }))
    })
  ]
};
