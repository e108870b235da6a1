import sys

# A Kubernetes job's pod runs `python -m kbatch_dask.driver --kubernetes JOBDIR ...`;
# a local job's detached process `python -m kbatch_dask.driver JOBDIR`.
if "--kubernetes" in sys.argv[1:]:
    from kbatch_dask.driver.kubernetes import main
else:
    from kbatch_dask.driver.local import main

sys.exit(main(sys.argv[1:]))
