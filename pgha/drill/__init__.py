"""DR drills: inject a fault, measure what it cost (RTO/RPO), check the cluster recovered."""
