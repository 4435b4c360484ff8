def test_planted_backdoor_is_real(planted):
    assert planted.before["asr"] > 0.9
    assert planted.before["ca"] > 0.75
