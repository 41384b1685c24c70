"""The modelmeta processes: web (api), worker, scheduler and the operator CLI."""
