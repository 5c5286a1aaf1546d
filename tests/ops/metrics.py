"""Reading /metrics in tests."""

import secrets
from pathlib import Path

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tests.auth import api_client


def write_token(directory: Path) -> tuple[Path, str]:
    token = secrets.token_urlsafe(32)
    path = directory / "metrics.token"
    path.write_text(token + "\n")  # an editor's trailing newline is not part of the token
    return path, token


async def scrape(app: FastAPI, token: str) -> str:
    async with api_client(app) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    ]


def value(exposition: str, name: str, **labels: str) -> float:
    """The sample's value; 0 for a labelled series not seen yet (counters start at 0)."""
    for sample_name, sample_labels, sample_value in samples(exposition):
        if sample_name == name and sample_labels == labels:
            return sample_value
    return 0.0
