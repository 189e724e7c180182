"""Server-rendered pages (pt-BR) and HTMX partials; hidden from OpenAPI."""
