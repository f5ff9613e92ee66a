#!/usr/bin/env bash
# Job status for snakemake-executor-plugin-cluster-generic: prints running, success or failed.
# Works without an accounting database (scontrol keeps finished jobs for MinJobAge seconds);
# uses sacct when scontrol no longer knows the job.
jobid=${1%%;*}
state=$(scontrol show job "$jobid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
[ -n "$state" ] || state=$(sacct -j "$jobid" -X -n -o State 2>/dev/null | head -1 | awk '{print $1}')
case "$state" in
  COMPLETED) echo success ;;
  PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|RESIZING|"") echo running ;;
  *) echo failed ;;
esac
