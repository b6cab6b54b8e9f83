"""SMP prompts, user profiles and comment cleaning (the authors' texts and rules)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from aesmamba_hf.prompts import UserProfile, build_prompt, clean_comment

USERINFO_CSV = (
    "userId,age,gender,EducationalLevel,artExperience,photographyExperience,"
    "personality-E,personality-A,personality-N,personality-O,personality-C\n"
    "A0c1,22-25,female,university,proficient,competent,6,8,4,7,5\n"
    "B9x2,30-34,male,junior_college,beginner,expert,3,9,10,2,6\n"
)

# the authors' prompt, written out literally for the first row above (note "...is 4.My artistic": no space)
AUTHORS_PROMPT_A0C1 = (
    "In the Big-Five personality traits test, my scores are as follows: Openness score is 7, "
    "conscientiousness score is 5, extroversion score is 6, agreeableness score is 8, "
    "and Neuroticism score is 4.My artistic experience is proficient, "
    "while my photographic experience is competent."
)


@pytest.fixture
def userinfo() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(USERINFO_CSV))


def test_authors_prompt_byte_for_byte_from_a_para_row(userinfo):
    row = userinfo[userinfo["userId"] == "A0c1"].iloc[0]  # how the authors look the user up
    profile = UserProfile.from_para_row(row)
    prompt = build_prompt(profile)
    assert prompt == AUTHORS_PROMPT_A0C1
    assert prompt.encode("utf-8") == AUTHORS_PROMPT_A0C1.encode("utf-8")
    # the same from a plain dict row, and the demographic columns do not leak into the default prompt
    assert build_prompt(UserProfile.from_para_row(row.to_dict())) == AUTHORS_PROMPT_A0C1
    assert (profile.age, profile.gender, profile.education, profile.user_id) == (
        "22-25", "female", "university", "A0c1")


def test_pandas_float_columns_print_with_a_decimal_like_the_authors(userinfo):
    # one missing cell turns the whole column into float64; str() then prints 7.0, as in the authors' prompt
    userinfo.loc[1, "personality-O"] = np.nan
    assert userinfo["personality-O"].dtype == np.float64
    prompt = build_prompt(UserProfile.from_para_row(userinfo.iloc[0]))
    assert "Openness score is 7.0, conscientiousness score is 5," in prompt
    assert prompt == AUTHORS_PROMPT_A0C1.replace("Openness score is 7,", "Openness score is 7.0,")
    # the user with the NaN cell simply has no openness
    profile = UserProfile.from_para_row(userinfo.iloc[1])
    assert profile.openness is None
    assert build_prompt(profile).startswith(
        "In the Big-Five personality traits test, my scores are as follows: conscientiousness score is 6,")


def test_fix_spacing_switch():
    profile = UserProfile.from_para_row(pd.read_csv(io.StringIO(USERINFO_CSV)).iloc[0])
    fixed = build_prompt(profile, fix_spacing=True)
    assert fixed == AUTHORS_PROMPT_A0C1.replace("4.My artistic", "4. My artistic")
    assert profile.to_prompt(fix_spacing=True) == fixed


def test_subsets_of_characters():
    profile = UserProfile(openness=7, conscientiousness=5, extroversion=6, agreeableness=8, neuroticism=4,
                          art_experience="beginner", photo_experience="expert")
    assert build_prompt(profile, ["art_experience"]) == "My artistic experience is beginner."
    assert build_prompt(profile, "photo_experience") == "My photographic experience is expert."
    assert build_prompt(profile, ["experience"]) == (
        "My artistic experience is beginner, while my photographic experience is expert.")
    assert build_prompt(profile, ["big_five"]) == (
        "In the Big-Five personality traits test, my scores are as follows: Openness score is 7, "
        "conscientiousness score is 5, extroversion score is 6, agreeableness score is 8, "
        "and Neuroticism score is 4.")
    # order of the request does not matter; two traits, one trait
    assert build_prompt(profile, ["neuroticism", "openness"]) == (
        "In the Big-Five personality traits test, my scores are as follows: Openness score is 7, "
        "and Neuroticism score is 4.")
    assert build_prompt(profile, ["agreeableness"]) == (
        "In the Big-Five personality traits test, my score is as follows: agreeableness score is 8.")
    assert build_prompt(profile, ["photo_experience", "extroversion"]) == (
        "In the Big-Five personality traits test, my score is as follows: extroversion score is 6."
        "My photographic experience is expert.")
    # a partial profile with the default (SMP) characters uses what it has
    assert build_prompt(UserProfile(photo_experience="competent")) == "My photographic experience is competent."


def test_extra_characters_in_fixed_order():
    profile = UserProfile(
        neuroticism=3, art_experience="expert", age="18-21", gender="female", education="master",
        extra={"favourite_genre": "landscape", "country": "Norway", "years_of_practice": 4},
    )
    expected = (
        "In the Big-Five personality traits test, my score is as follows: Neuroticism score is 3."
        "My artistic experience is expert. My age is 18-21. My gender is female. "
        "My educational level is master. My country is Norway. My favourite genre is landscape. "
        "My years of practice is 4."
    )
    assert build_prompt(profile, "all") == expected
    shuffled = ["years_of_practice", "education", "country", "gender", "neuroticism", "age",
                "favourite_genre", "art_experience"]
    assert build_prompt(profile, shuffled) == expected
    assert build_prompt(profile, "all", fix_spacing=True) == expected.replace("3.My", "3. My")
    assert build_prompt(profile, ["gender", "extra"]) == (
        "My gender is female. My country is Norway. My favourite genre is landscape. My years of practice is 4.")
    # the default prompt keeps to the released SMP characters
    assert build_prompt(profile) == (
        "In the Big-Five personality traits test, my score is as follows: Neuroticism score is 3."
        "My artistic experience is expert.")
    assert profile.available_characters() == [
        "neuroticism", "art_experience", "age", "gender", "education",
        "country", "favourite_genre", "years_of_practice"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"art_experience": "master"}, "art_experience must be one of beginner, competent, proficient, expert"),
        ({"photo_experience": 3}, "photo_experience must be one of"),
        ({"openness": 11}, r"openness=11 is outside the PARA Big-Five range \[1, 10\]"),
        ({"neuroticism": 0}, "outside the PARA Big-Five range"),
        ({"agreeableness": -2.5}, "outside the PARA Big-Five range"),
        ({"extroversion": "7"}, "extroversion must be a number"),
        ({"conscientiousness": True}, "conscientiousness must be a number"),
        ({"openness": float("inf")}, "must be finite"),
        ({"extra": {"": "x"}}, "keys must be non-empty strings"),
        ({"extra": {"age": 30}}, "clashes with a named character"),
        ({"extra": {"pets": ["cat"]}}, r"extra\['pets'\] must be a string or a number"),
        ({"gender": {"x": 1}}, "gender must be a string or a number"),
    ],
)
def test_invalid_profiles_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UserProfile(**kwargs)


def test_invalid_rows_and_requests_are_rejected():
    with pytest.raises(ValueError, match="PARA user 'u7'.*outside the PARA Big-Five range"):
        UserProfile.from_para_row({"userId": "u7", "personality-O": 12, "artExperience": "expert"})
    with pytest.raises(ValueError, match="PARA user 'u8'.*must be one of"):
        UserProfile.from_para_row(pd.Series({"userId": "u8", "artExperience": "guru"}))
    with pytest.raises(ValueError, match="none of the PARA UserInfo columns"):
        UserProfile.from_para_row({"imageName": "x.jpg", "aestheticScore": 3})
    profile = UserProfile(openness=5)
    with pytest.raises(ValueError, match=r"no value for the requested character\(s\) \['art_experience'\]"):
        build_prompt(profile, ["openness", "art_experience"])
    with pytest.raises(ValueError, match="unknown character 'shoe_size'"):
        build_prompt(profile, ["shoe_size"])
    with pytest.raises(ValueError, match="prompt would be empty"):
        build_prompt(UserProfile(age=40))  # no SMP character
    # case-insensitive levels are accepted and printed as given
    assert build_prompt(UserProfile(art_experience="Expert")) == "My artistic experience is Expert."


def test_json_round_trip_keeps_int_and_float_formatting(tmp_path):
    profile = UserProfile(openness=7, conscientiousness=5.0, extroversion=np.int64(6), agreeableness=8,
                          neuroticism=np.float64(4), art_experience="competent", photo_experience="beginner",
                          age=33, extra={"country": "Chile"}, user_id="u1")
    assert isinstance(profile.extroversion, int) and isinstance(profile.neuroticism, float)
    path = tmp_path / "me.json"
    text = profile.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    for loaded in (UserProfile.from_json(path), UserProfile.from_json(str(path)), UserProfile.from_json(text)):
        assert loaded == profile
        assert build_prompt(loaded, "all") == build_prompt(profile, "all")
    assert "conscientiousness score is 5.0, extroversion score is 6," in build_prompt(profile)
    assert "Neuroticism score is 4.0.My" in build_prompt(profile)
    # PARA column names are accepted in JSON files too; unknown keys are an error naming them
    para = UserProfile.from_json(json.dumps({"personality-O": 3, "photographyExperience": "expert"}))
    assert (para.openness, para.photo_experience) == (3, "expert")
    with pytest.raises(ValueError, match=r"unknown user-profile keys \['shoe'\]"):
        UserProfile.from_json('{"shoe": 44}')
    with pytest.raises(ValueError, match="not valid JSON"):
        UserProfile.from_json("{oops")
    with pytest.raises(ValueError, match="cannot read user profile"):
        UserProfile.from_json(tmp_path / "missing.json")


def test_clean_comment_follows_the_authors_rule():
    raw = "['Thank you for your considerations\\r\\n , Very nice shot :)', \"Great ~ light *#\"]"
    assert clean_comment(raw) == "Thank you for your considerations\\r , Very nice shot , Great light"
    assert clean_comment("  a\t\tb  (c)  ") == "a b c"
    long = " ".join(f"w{i}" for i in range(250))
    assert clean_comment(long).split(" ") == [f"w{i}" for i in range(200)]
    assert clean_comment(long, max_words=None) == long
    assert clean_comment(None) == "" and clean_comment(float("nan")) == ""
    assert clean_comment("Keep Case, commas; and dots.") == "Keep Case, commas; and dots."
