"""FastAPI dependencies, as ``Annotated`` aliases: a route declares ``store: StoreDep`` and gets the state store.

Each comes from the process's :class:`~serving.services.Services`, built once in the app's lifespan. They are
``async`` so that FastAPI calls them in the event loop rather than in its thread pool.

>>> from typing import get_args
>>> get_args(StoreDep)[0].__name__, get_args(StoreDep)[1].dependency.__name__
('StateStore', 'get_store')
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from churnstream.settings import Settings
from features.store import StateStore
from serving.alerting import ThresholdStore
from serving.catalog import ModelCatalog
from serving.import_jobs import ImportJobs
from serving.keys import KeyStore
from serving.recommendations import RecommendationService
from serving.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_app_settings(services: ServicesDep) -> Settings:
    """The settings the app was created with (not a fresh read of the environment)."""
    return services.settings


async def get_store(services: ServicesDep) -> StateStore:
    return services.store


async def get_catalog(services: ServicesDep) -> ModelCatalog:
    return services.catalog


async def get_key_store(services: ServicesDep) -> KeyStore:
    return services.keys


async def get_recommendations(services: ServicesDep) -> RecommendationService:
    return services.recommendations


async def get_import_jobs(services: ServicesDep) -> ImportJobs:
    return services.imports


async def get_thresholds(services: ServicesDep) -> ThresholdStore:
    return ThresholdStore(services.redis)


def get_clickhouse(services: ServicesDep) -> Any:
    """The process's ClickHouse client; a plain ``def``, so that FastAPI calls it in its thread pool: the first
    call connects (embedded chDB opens its data path), which must not block the event loop."""
    return services.clickhouse()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[StateStore, Depends(get_store)]
CatalogDep = Annotated[ModelCatalog, Depends(get_catalog)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
ThresholdsDep = Annotated[ThresholdStore, Depends(get_thresholds)]
RecommendationsDep = Annotated[RecommendationService, Depends(get_recommendations)]
ImportJobsDep = Annotated[ImportJobs, Depends(get_import_jobs)]
ClickHouseDep = Annotated[Any, Depends(get_clickhouse)]  # a clickhouse-connect Client
