"""The stored things, one module each over one DynamoDB helper: event history, verdicts, incidents, the ledger."""
