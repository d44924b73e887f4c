"""Local AWS emulation: a moto server plus local processes standing in for containers."""
