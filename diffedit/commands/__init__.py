"""Sub-commands of the `diffedit` command line, one module each."""
