#!/usr/bin/env bash
# Job status for snakemake-executor-plugin-cluster-generic: prints running, success or failed.
# Works without an accounting database (scontrol keeps finished jobs for MinJobAge seconds);
# uses sacct when scontrol no longer knows the job.
# A job neither knows (purged, and no accounting) counts as failed, so a retry recovers it; if
# the controller does not answer at all, the job counts as running and is asked about again.
jobid=${1%%;*}
if out=$(scontrol show job "$jobid" 2>&1); then
  state=$(echo "$out" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
elif echo "$out" | grep -qi 'invalid job id'; then
  state=$(sacct -j "$jobid" -X -n -o State 2>/dev/null | head -1 | awk '{print $1}')
  state=${state:-UNKNOWN}
else
  state=""  # no answer from the controller: ask again later
fi
case "$state" in
  COMPLETED) echo success ;;
  PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|RESIZING|"") echo running ;;
  *) echo failed ;;
esac
