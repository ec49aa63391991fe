"""The operators' commands (``gateway corrections|refunds|history|selfcheck``): the
command-line counterpart of the dashboard's pages, above the services and the accounts.

Every command logs its person in with their dashboard account (``--account LOGIN`` and the
password, ``gateway.dashboard.cli.sign_in``) and holds them to the dashboard's role and
region rules, so that one person has one identity in both channels."""
