"""Column policies: posts and orders come out pseudonymised, renamed, generalised, scrubbed."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ingest_platform.models import Order, Post
from ingest_platform.privacy.policies import (
    ORDERS_OUTPUT_COLUMNS,
    ORDERS_POLICY,
    POSTS_OUTPUT_COLUMNS,
    POSTS_POLICY,
    Action,
    ColumnPolicy,
    Generalisation,
    TablePolicy,
    birth_year,
    postcode_prefix,
    sound_title,
    tokenise_url_handles,
)
from ingest_platform.privacy.text_scrubber import TextScrubber
from ingest_platform.privacy.tokens import Pseudonymizer


@pytest.fixture(scope="module")
def pseudo() -> Pseudonymizer:
    return Pseudonymizer(b"policy-test-key-0123456789abcdef!", "p1")


def _posts() -> pd.DataFrame:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    posts = [
        Post(
            post_id="7300000000000000001",
            description="dance with @Jane.Doe — bookings: jane@studio.com #fyp",
            created_at=now,
            author_id="6800000000000000001",
            author_handle="Jane.Doe",
            author_nickname="Jane 💃",
            author_sec_uid="MS4wLjABAAAA-secret",
            author_bio="call +1 415 555 0123",
            play_count=10,
            hashtags=["fyp"],
            music_title="original sound - Jane 💃",
            music_author="Jane 💃",
            music_original=True,
            mentions=["jane.doe", "@Bob"],
            source_url="https://www.tiktok.com/@jane.doe/video/7300000000000000001",
            scraped_at=now,
        ),
        Post(
            post_id="7300000000000000002",
            created_at=now,
            author_handle="bob",
            mentions=[],
            music_title="Espresso",
            music_author="Sabrina Carpenter",
            source_url="https://www.tiktok.com/@bob/video/7300000000000000002",
            scraped_at=now,
        ),
    ]
    return pd.DataFrame([p.model_dump() for p in posts])


def _orders() -> pd.DataFrame:
    orders = [
        Order(
            order_id="o-1",
            created_at=datetime(2026, 1, 2, tzinfo=UTC),
            customer_name="Jane  Doe",
            customer_email=" Jane@Example.com",
            customer_phone="(415) 555-0123",
            shipping_address="1 Main St, Springfield",
            postcode="SW1A 1AA",
            customer_ip="81.2.69.160",
            birth_date="1990-05-17",
            amount=12.5,
            note="leave at door, call 415-555-0123",
        ),
        Order(order_id="o-2", created_at=datetime(2026, 1, 3, tzinfo=UTC), customer_email="jane@example.com",
              customer_phone="+1 415 555 0123", postcode="94103-1234", birth_date="17/05/1985", amount=3.0),
    ]  # fmt: skip
    return pd.DataFrame([o.model_dump() for o in orders])


def test_policies_cover_the_boundary_models_exactly() -> None:
    assert set(POSTS_POLICY.columns) == set(Post.model_fields)
    assert set(ORDERS_POLICY.columns) == set(Order.model_fields)


def test_output_column_names() -> None:
    assert POSTS_OUTPUT_COLUMNS == (
        "platform", "post_id", "description", "created_at", "author_id_token", "author_handle_token",
        "author_nickname_token", "author_sec_uid_token", "author_bio", "author_verified", "play_count",
        "like_count", "comment_count", "share_count", "collect_count", "hashtags", "mention_tokens",
        "music_id", "music_title", "music_author_token", "music_original", "duration_seconds",
        "location_created", "is_ad", "is_slideshow", "source_url", "scraped_at", "proxy_id", "backend",
    )  # fmt: skip
    assert ORDERS_OUTPUT_COLUMNS == (
        "order_id", "created_at", "customer_name_token", "customer_email_token", "customer_phone_token",
        "postcode_area", "customer_ip_token", "birth_year", "currency", "amount", "items", "note",
    )  # fmt: skip


def test_posts_policy(pseudo: Pseudonymizer) -> None:
    raw = _posts()
    out, stats = POSTS_POLICY.apply(raw, pseudo)
    assert tuple(out.columns) == POSTS_OUTPUT_COLUMNS
    handle = pseudo.token("jane.doe", "handle")
    assert out.loc[0, "author_handle_token"] == handle
    assert out.loc[0, "mention_tokens"] == [handle, pseudo.token("bob", "handle")]  # mentions join authors
    assert out.loc[1, "mention_tokens"] == []
    assert out.loc[0, "author_id_token"] == pseudo.token("6800000000000000001")
    assert out.loc[1, "author_id_token"] is None
    assert "@Jane.Doe" not in out.loc[0, "description"] and "jane@studio.com" not in out.loc[0, "description"]
    assert "#fyp" in out.loc[0, "description"]
    assert out.loc[0, "author_bio"].startswith("call [PHONE:")
    assert "jane.doe" not in out.loc[0, "source_url"]
    assert out.loc[0, "source_url"].endswith("/video/7300000000000000001")
    assert out.loc[0, "play_count"] == 10 and out.loc[0, "hashtags"] == ["fyp"]
    assert stats.hashed["author_handle_token"] == 2 and stats.hashed["mention_tokens"] == 2
    assert stats.scrubbed["description"] == {"MENTION": 1, "EMAIL": 1}
    assert stats.found == {"MENTION": 1, "EMAIL": 1, "PHONE": 1, "URL_HANDLE": 2}
    assert stats.pii_found_in_text == 5
    # Original sounds credit the poster: title generalised, author hashed like the nickname.
    assert out["music_title"].tolist() == ["original sound", "Espresso"]
    assert out.loc[0, "music_author_token"] == out.loc[0, "author_nickname_token"]


def test_no_raw_personal_value_survives_in_posts(pseudo: Pseudonymizer) -> None:
    out, _ = POSTS_POLICY.apply(_posts(), pseudo)
    flat = out.astype(str).to_string()
    secrets = ("Jane.Doe", "jane.doe", "Jane 💃", "MS4wLjABAAAA-secret", "6800000000000000001", "555 0123")
    for secret in secrets:
        assert secret not in flat


def test_orders_policy(pseudo: Pseudonymizer) -> None:
    raw = _orders()
    out, stats = ORDERS_POLICY.apply(raw, pseudo, TextScrubber(pseudo))
    assert tuple(out.columns) == ORDERS_OUTPUT_COLUMNS
    assert out.loc[0, "customer_email_token"] == out.loc[1, "customer_email_token"]  # same customer joins
    assert out.loc[0, "customer_phone_token"] == out.loc[1, "customer_phone_token"]
    assert out.loc[0, "customer_name_token"] == pseudo.token("jane doe", "name")
    assert out["postcode_area"].tolist() == ["SW1A", "941"]
    assert out["birth_year"].tolist() == [1990, 1985]
    assert out.loc[0, "customer_ip_token"] == pseudo.token("81.2.69.160", "ip")
    phone_tag = out.loc[0, "note"].split("[PHONE:")[1][:8]
    assert out.loc[0, "customer_phone_token"].split(":")[1].startswith(phone_tag)  # note tag = column token
    assert out.loc[0, "amount"] == 12.5 and out.loc[0, "order_id"] == "o-1"
    assert stats.dropped == ["shipping_address"]
    assert stats.as_dict()["generalised"] == {"postcode_area": 2, "birth_year": 2}
    flat = out.astype(str).to_string()
    for secret in ("Jane", "Example.com", "555-0123", "Main St", "1AA", "81.2.69.160", "05-17"):
        assert secret not in flat


def test_unknown_columns_follow_the_table_default(pseudo: Pseudonymizer) -> None:
    raw = _orders().assign(loyalty_card="1234", customer_email_2="x@y.com")
    out, stats = ORDERS_POLICY.apply(raw, pseudo)
    assert "loyalty_card" not in out.columns and "customer_email_2" not in out.columns
    assert stats.unknown_dropped == ["loyalty_card", "customer_email_2"]
    lenient = TablePolicy("t", {"a": ColumnPolicy.hashed()}, default=Action.KEEP)
    out2, stats2 = lenient.apply(pd.DataFrame({"a": ["x"], "b": [1]}), pseudo)
    assert out2.columns.tolist() == ["a_token", "b"] and stats2.unknown_kept == ["b"]


def test_missing_policy_columns_are_reported_not_fatal(pseudo: Pseudonymizer) -> None:
    out, stats = ORDERS_POLICY.apply(_orders()[["order_id", "customer_email"]], pseudo)
    assert out.columns.tolist() == ["order_id", "customer_email_token"]
    assert "note" in stats.missing and "order_id" not in stats.missing


def test_empty_frame_keeps_the_schema(pseudo: Pseudonymizer) -> None:
    out, stats = ORDERS_POLICY.apply(_orders().iloc[0:0], pseudo)
    assert tuple(out.columns) == ORDERS_OUTPUT_COLUMNS and len(out) == 0 and stats.rows == 0


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        TablePolicy("t", {"a": ColumnPolicy.kept()}, default=Action.HASH)
    with pytest.raises(ValueError):
        TablePolicy("t", {"a": ColumnPolicy.hashed(output="x"), "b": ColumnPolicy.kept(output="x")})
    with pytest.raises(ValueError):
        ColumnPolicy(Action.GENERALISE)
    with pytest.raises(ValueError):
        ColumnPolicy.hashed("nonsense")  # type: ignore[arg-type]


def test_postcode_prefix() -> None:
    raw = pd.Series(["SW1A 1AA", "sw1a1aa", "EC1A 1BB", "M1 1AE", "W1A0AX", "94103-1234", "10115", None, " "])
    assert postcode_prefix(raw).tolist() == ["SW1A", "SW1A", "EC1A", "M1", "W1A", "941", "101", None, None]


def test_birth_year() -> None:
    raw = pd.Series(["1990-05-17", "17/05/1985", "May 3, 1979", None, "unknown", "20010101"])
    assert birth_year(raw).tolist()[:3] == [1990, 1985, 1979]
    assert birth_year(raw).isna().tolist()[3:5] == [True, True]
    dates = pd.Series(pd.to_datetime(["1990-05-17", None]))
    assert birth_year(dates).tolist()[0] == 1990
    assert str(birth_year(raw).dtype) == "Int64"


def test_generalise_policy_names() -> None:
    policy = ColumnPolicy.generalised(Generalisation.POSTCODE_PREFIX)
    assert policy.output_name("zip") == "zip_area"
    assert ColumnPolicy.generalised("birth_year").output_name("dob") == "birth_year"
    assert ColumnPolicy.hashed("email").output_name("email") == "email_token"
    assert ColumnPolicy.dropped().output_name("x") is None


def test_sound_title() -> None:
    raw = pd.Series(
        ["original sound - Jane", "sonido original - Ana B", "Originalton – Lukas", "Espresso", None]
    )
    assert sound_title(raw).tolist() == ["original sound", "sonido original", "Originalton", "Espresso", None]


def test_no_sandbox_personal_value_survives_the_posts_policy(pseudo: Pseudonymizer) -> None:
    # End to end on the sandbox's generated posts, whose ground truth lists every e-mail,
    # phone, handle, nickname and secUid it served (captions, bios, mentions, music credits).
    from ingest_platform.sandbox.content import SandboxContent
    from ingest_platform.scraping import tiktok_page as page_module

    content = SandboxContent.generate(seed=11)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    posts = []
    for post_id, post in content.posts_by_id.items():
        handle = post.item["author"]["uniqueId"]
        url = f"https://www.tiktok.com/@{handle}/video/{post_id}"
        posts.append(page_module.item_to_post(content.item_struct(post_id), source_url=url, scraped_at=now))
    raw = pd.DataFrame([p.model_dump() for p in posts])
    out, stats = POSTS_POLICY.apply(raw, pseudo)
    haystack = "\n".join(out.astype(str).to_numpy().ravel().tolist())
    leaked = sorted(v for v in content.pii_values() if len(v) >= 4 and v in haystack)
    assert leaked == []
    assert stats.found.get("EMAIL", 0) > 0 and stats.found.get("PHONE", 0) > 0


def test_profile_urls_on_any_host_lose_their_handle(pseudo: Pseudonymizer) -> None:
    # The free-text rule knows social-network domains; our own source URLs may be a mirror or the sandbox.
    urls = pd.Series(
        [
            "http://127.0.0.1:8765/@amara.fernandez",
            "https://mirror.example.org/@Amara.Fernandez/video/7712971909748508702",
            "http://127.0.0.1:8765/tag/lifehacks",
            None,
        ]
    )
    tokens, replaced = tokenise_url_handles(urls, pseudo)
    assert replaced == 2
    assert tokens[2] == "http://127.0.0.1:8765/tag/lifehacks" and tokens[3] is None
    assert all("amara" not in value.lower() for value in tokens[:2])
    # Same handle, same tag, whatever its case or host: rows stay joinable per author.
    assert tokens[0].split("/@")[1] == tokens[1].split("/@")[1].split("/")[0]
    assert tokens[1].endswith("/video/7712971909748508702")


def test_the_rows_own_handle_is_tokenised_in_urls_without_an_at(pseudo: Pseudonymizer) -> None:
    urls = pd.Series(
        ["https://www.facebook.com/cityroasters", "https://www.facebook.com/reel/2330959977401189/"]
    )
    handles = pd.Series(["CityRoasters", "cityroasters"])
    tokens, replaced = tokenise_url_handles(urls, pseudo, handles)
    assert replaced == 1
    assert "cityroasters" not in tokens[0].lower() and tokens[0].startswith(
        "https://www.facebook.com/[URL_HANDLE:"
    )
    assert (
        tokens[1] == "https://www.facebook.com/reel/2330959977401189/"
    )  # the handle is not in it: untouched


def test_kept_identifiers_that_are_personal_data_become_joinable_tokens(pseudo: Pseudonymizer) -> None:
    """Issue #12 item 6: an order id that is an e-mail or a phone number was kept in clear."""
    raw = _orders()
    raw["order_id"] = [" Jane@Example.com", "+1 415 555 0123"]
    extra = pd.DataFrame(
        [
            {**raw.iloc[1].to_dict(), "order_id": "ORD-2024-0001"},  # an ordinary id
            {**raw.iloc[1].to_dict(), "order_id": "4111111111111111"},  # digits only: an id, not a card
            {**raw.iloc[1].to_dict(), "order_id": "ref jane@example.com"},  # personal data inside
        ]
    )
    raw = pd.concat([raw, extra], ignore_index=True)
    out, stats = ORDERS_POLICY.apply(raw, pseudo, TextScrubber(pseudo))
    # The same value gives the same token as in the hashed column: the id still joins.
    email_token = pseudo.token("jane@example.com", "email")
    assert out.loc[0, "order_id"] == out.loc[0, "customer_email_token"] == email_token
    assert out.loc[1, "order_id"] == out.loc[1, "customer_phone_token"]
    assert out["order_id"].tolist()[2:4] == ["ORD-2024-0001", "4111111111111111"]
    assert out.loc[4, "order_id"] == pseudo.token("ref jane@example.com", "generic")
    assert stats.kept_tokenised == {"order_id": {"EMAIL": 1, "PHONE": 1, "PARTIAL": 1}}
    assert stats.pii_in_kept_columns == 3 and stats.as_dict()["pii_in_kept_columns"] == 3
    flat = out.astype(str).to_string()
    for secret in ("Jane", "xample.com", "555 0123"):
        assert secret not in flat


def test_kept_columns_without_personal_data_pass_through_untouched(pseudo: Pseudonymizer) -> None:
    raw = _posts()
    out, stats = POSTS_POLICY.apply(raw, pseudo, TextScrubber(pseudo))
    assert out["post_id"].tolist() == raw["post_id"].tolist()
    assert stats.kept_tokenised == {} and stats.pii_in_kept_columns == 0
