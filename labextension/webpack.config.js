/**
 * Swagger UI's bundle and style, copied as they are to static/swagger/: the API
 * explorer page the server serves outside Lab's panel (tfaas/explorer/) loads them
 * from there, so the one Swagger UI the extension bundles serves both. The stylesheets
 * of style/theme/ go to static/theme/: the pages served outside Lab's DOM (the graph
 * view, the explorer page) load them to take the Lab theme's colours.
 */
const path = require('path');
const { rspack } = require('@rspack/core');

module.exports = {
  plugins: [
    new rspack.CopyRspackPlugin({
      patterns: ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE'].map(file => ({
        from: require.resolve(`swagger-ui-dist/${file}`),
        to: `swagger/${file}`
      })).concat([{ from: path.resolve(__dirname, 'style/theme'), to: 'theme' }])
    })
  ]
};
