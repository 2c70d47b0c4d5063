"""ST's InformationRetrievalEvaluator and what fine-tuning changed per query. Imports model/ and data/."""
