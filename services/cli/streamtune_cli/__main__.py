"""``python -m streamtune_cli`` runs the same CLI as the ``streamtune`` script."""

from .app import main

main()
