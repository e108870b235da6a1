from kbatch_dask.cli import main

main()
