"""Code shared by the modelmeta web, worker and scheduler processes."""
