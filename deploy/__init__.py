"""What runs Salesline beyond one process: the gateway, container, compose and Kubernetes files."""
