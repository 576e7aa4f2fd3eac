"""The command a person types: validate, preview, review, diff, migrate and demo a stack."""
