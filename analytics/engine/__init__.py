"""The numeric engine: sample allocation and selection, AAPOR outcome rates, weighting,
estimation and variance, quality grades, replicate weights, disclosure control, editing and
imputation.

Pure numpy and scipy on arrays, no Django and no app (an import-linter contract in
`make test` says so): each function is testable alone and cites its section of
docs/methodology.md."""
