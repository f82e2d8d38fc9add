"""The numeric engine: sample allocation and selection (coordinated by permanent random numbers
across rounds), AAPOR outcome rates, weighting, estimation and variance, estimates of change
between rounds, quality grades, replicate weights, disclosure control, editing and imputation.

Pure numpy and scipy on arrays, no Django and no app (an import-linter contract in
`make test` says so): each function is testable alone and cites its section of
docs/methodology.md."""
