"""The Hydra side of mlpsweep: the schema derived from the knobs, the task function run
for every job, the sweep planner our sweeper calls, and the callbacks that build the
report. Results are read and written through mlpsweep.records only."""
