"""The data plane: dataset readers -> manifest -> frame sampling -> face stage -> Parquet frame cache."""
