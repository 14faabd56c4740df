// Swagger UI for kshot serve's /docs, from files served by this server (its CSP allows no other origin).
// The key typed into "Authorize" stays in this page's memory (persistAuthorization is off).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: true,
  persistAuthorization: false,
});
