"""Target modules for the runtime tests: imported only in child processes."""
