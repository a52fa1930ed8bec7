"""The ``streamtune`` operators' CLI (typer + rich) over the same Redis streams and object store as the services."""
