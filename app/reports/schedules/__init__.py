"""Weekly and monthly status reports made on a schedule by `habeas worker`: the schedules
(set in the configuration or by coordinators through the API) and the record of each run."""
