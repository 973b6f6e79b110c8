"""Service desk: after-sales tickets with SLAs, warranty and repair, knowledge base, surveys."""
