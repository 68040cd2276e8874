from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RLAIF_DEMO_", extra="ignore")


def test_defaults_bind_loopback_without_key(monkeypatch):
    monkeypatch.delenv("RLAIF_DEMO_API_KEY", raising=False)
    settings = DemoSettings()
    assert settings.host == "127.0.0.1"
    assert settings.api_key_value() is None


def test_api_key_comes_from_the_environment_and_is_not_printed(monkeypatch):
    monkeypatch.setenv("RLAIF_DEMO_API_KEY", "k-123")
    settings = DemoSettings()
    assert settings.api_key_value() == "k-123"
    assert "k-123" not in repr(settings)


def test_blank_key_disables_auth(monkeypatch):
    monkeypatch.setenv("RLAIF_DEMO_API_KEY", "  ")
    assert DemoSettings().api_key_value() is None
