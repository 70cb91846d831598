"""The thin Dagster layer: resources, assets with their checks, sensors, jobs and schedules."""
