"""Request handlers, one module per resource: decode (done by the route), call shared/, answer."""
