"""What users ask for: checkout, Connect onboarding, payouts and refunds, each checked against
the ledger and Stripe and carried out through the gateway."""
