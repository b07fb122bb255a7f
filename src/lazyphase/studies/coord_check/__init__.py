"""The coordinate check (docs/conventions.md §7): per layer and parameterization, the size of the
pre-activation update after k steps against width, its log-log slope and spread."""
