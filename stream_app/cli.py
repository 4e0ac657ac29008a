"""The ``ember`` command (console script ``ember = stream_app.cli:main``).

Kept tiny: each part of ember defines its commands in its own module and registers them here.
"""

import click

from stream_app import cli_backfill, cli_model, cli_stream


@click.group()
def main():
    """ember: streaming anomaly detection over event files, Kafka and BigQuery."""


cli_model.register(main)
cli_backfill.register(main)
cli_stream.register(main)


@main.command("nab")
@click.argument("data_file", required=False, default="-")
def nab(data_file):
    """The NAB detector contract: one NAB CSV (timestamp,value) in (a file, or stdin when
    DATA_FILE is '-' or left out), one anomaly score in [0, 1] per row out, learning online
    with no look-ahead."""
    from ember_models.nab import main as nab_main

    raise SystemExit(nab_main([data_file]))

if __name__ == "__main__":
    main()
