"""What the cluster benchmark counts as video missing, recorded twice and back again (bench/cluster.py), without
I/O."""

import pytest

from bench.cluster import back_after, holes, spread, twice_covered


def test_back_to_back_chunks_leave_no_hole():
    spans = [(10.0, 12.0), (12.0, 14.0), (14.0, 16.0)]
    assert holes(spans, 11.0, 15.0) == []


def test_a_hole_between_chunks_is_found_and_one_frame_counts():
    spans = [(10.0, 12.0), (12.0667, 14.0), (17.5, 20.0)]
    assert holes(spans, 10.0, 20.0) == [(12.0, 12.0667), (14.0, 17.5)]


def test_rounding_between_chunks_is_not_a_hole():
    assert holes([(10.0, 12.0), (12.001, 14.0)], 10.0, 14.0) == []


def test_the_stretch_before_the_first_and_after_the_last_chunk_is_missing():
    assert holes([(12.0, 14.0)], 10.0, 16.0) == [(10.0, 12.0), (14.0, 16.0)]
    assert holes([], 10.0, 16.0) == [(10.0, 16.0)]


def test_chunks_after_the_stretch_do_not_cover_a_hole_inside_it():
    assert holes([(10.0, 12.0), (20.0, 22.0)], 10.0, 16.0) == [(12.0, 16.0)]
    assert holes([(10.0, 12.0), (15.0, 30.0)], 10.0, 16.0) == [(12.0, 15.0)]


def test_chunks_out_of_order_or_overlapping_cover_their_union():
    spans = [(14.0, 16.0), (10.0, 13.0), (12.0, 14.0)]
    assert holes(spans, 10.0, 16.0) == []
    assert twice_covered(spans) == 1.0


def test_two_sessions_over_the_same_time_count_as_recorded_twice():
    assert twice_covered([(10.0, 12.0), (12.0, 14.0)]) == 0.0
    assert twice_covered([(10.0, 14.0), (11.0, 12.0), (13.0, 15.0)]) == 2.0


def test_back_after_is_the_end_of_the_last_hole():
    assert back_after([], 100.0) == 0.0
    assert back_after([(100.5, 101.0), (103.0, 106.2)], 100.0) == pytest.approx(6.2)
    assert back_after([(96.0, 97.0)], 100.0) == 0.0, "a hole before the kill is not the kill's"


def test_spread_of_no_cameras_is_zero():
    assert spread([]) == {"max": 0.0, "median": 0.0}
    assert spread([0.0, 1.0, 5.5]) == {"max": 5.5, "median": 1.0}
