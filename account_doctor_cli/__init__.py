"""The operator CLI (`account-doctor`): diagnose an account (dry run), read verdicts and incidents, redrive the DLQ.

It runs on an operator's machine, outside the Lambda layer, and imports the core package
(`account_doctor`) the functions run: the same procedure, stores and read API answers.
"""
