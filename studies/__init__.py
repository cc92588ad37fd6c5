"""Studies: runs that train the recipes on the fixtures and compare them (python -m studies.<name>);
their dated reports are in studies/results/. Never part of make test or make bench."""
