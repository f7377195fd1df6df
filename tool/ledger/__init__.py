"""The grade ledger: point allocations per student and offering, with corrections and voids."""
