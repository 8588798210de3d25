"""``python app.py`` with Gradio's private-address check on URL arguments relaxed, so that a test can serve a
picture on 127.0.0.1 and see that the app itself refuses a URL-named image (without the relaxation Gradio
would refuse the loopback address first, and the test could not tell the two refusals apart)."""

import runpy
import sys
from pathlib import Path

import httpx
from gradio import processing_utils


async def fetch_anything(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        await response.aread()
        return response


processing_utils.async_ssrf_protected_get = fetch_anything
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
