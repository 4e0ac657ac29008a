"""The ``ember`` command (console script ``ember = stream_app.cli:main``).

Kept tiny: each part of ember defines its commands in its own module and registers them here.
"""

import click

from stream_app import cli_backfill, cli_model


@click.group()
def main():
    """ember: streaming anomaly detection over event files, Kafka and BigQuery."""


cli_model.register(main)
cli_backfill.register(main)

if __name__ == "__main__":
    main()
