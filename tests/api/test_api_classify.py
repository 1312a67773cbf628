"""/v1/classify: one image in, the faces and their mask verdicts out, nothing kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.deps import LazyModels
from maskwatch.runtime import SetupError
from tests.api.api_support import Keys, ModelLoader, bearer, files_under


def classify(client: TestClient, key: str, content: bytes, name: str = "still.png") -> Any:
    return client.post(
        "/v1/classify", headers=bearer(key), files={"file": (name, content, "image/png")}
    )


def test_faces_come_back_as_face_json(
    client: TestClient, keys: Keys, image_bytes: bytes, model_loader: ModelLoader, tmp_path: Path
) -> None:
    response = classify(client, keys.south, image_bytes)
    assert response.status_code == 200, response.text
    # FakeDetector: one box over the middle half of the 200x160 image; FakeClassifier: 0.8.
    assert response.json() == {
        "faces": [{"box": [50.0, 40.0, 150.0, 120.0], "label": "with_mask", "score": 0.792}]
    }
    assert classify(client, keys.south, image_bytes).status_code == 200
    assert model_loader.loads == 1  # loaded lazily, once per app
    assert files_under(tmp_path) == []


def test_models_are_not_loaded_until_needed(
    client: TestClient, keys: Keys, model_loader: ModelLoader
) -> None:
    client.get("/v1/jobs", headers=bearer(keys.admin))
    assert model_loader.loads == 0


def test_oversized_image_is_413(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    response = classify(client, keys.admin, b"\xff" * (128 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": "the file is larger than the limit of 131072 bytes"}
    assert files_under(tmp_path) == []


def test_missing_checkpoint_is_503(
    app_factory: Callable[..., Any], keys: Keys, image_bytes: bytes, tmp_path: Path
) -> None:
    def no_checkpoint() -> Any:
        raise SetupError("classifier checkpoint missing: /srv/models/mask_cnn.pt")

    with TestClient(app_factory(models=LazyModels(no_checkpoint))) as client:
        response = classify(client, keys.admin, image_bytes)
    assert response.status_code == 503
    assert response.json() == {"detail": "the classifier is not available"}  # no server path
    assert files_under(tmp_path) == []


def test_form_fields_are_refused(
    client: TestClient, keys: Keys, image_bytes: bytes, tmp_path: Path
) -> None:
    response = client.post(
        "/v1/classify",
        headers=bearer(keys.admin),
        data={"camera": "x"},
        files={"file": ("a.png", image_bytes)},
    )
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "unknown form field(s): camera"},
    )
    assert files_under(tmp_path) == []
