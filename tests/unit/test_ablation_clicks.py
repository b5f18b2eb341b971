"""Switching units off by clicking them: adding to and toggling a unit in a list of ablations (the core's), the
units of a graph click or selection, and the crosses the network graph draws over switched-off units."""

from layerscope.ablation import Ablation, add_ablation, switch_off, toggle_unit, unit_scales
from layerscope.dashboard.interventions import graph_units
from layerscope.dashboard.unit_figures import ablated_trace


def test_adding_an_ablation_joins_the_entry_of_its_layer_and_scale():
    current = (Ablation("fc2", (3,), 0.0), Ablation("conv2", (1,), 0.5))
    assert add_ablation(current, Ablation("fc2", (7, 3), 0.0)) == [Ablation("fc2", (3, 7), 0.0), current[1]]
    assert add_ablation(current, Ablation("fc2", (7,), 0.5)) == [*current, Ablation("fc2", (7,), 0.5)]
    assert add_ablation(current, Ablation("conv2", (0,), 0.5)) == [current[0], Ablation("conv2", (0, 1), 0.5)]
    assert add_ablation([], Ablation("fc1", (2,))) == [Ablation("fc1", (2,))]
    assert current == (Ablation("fc2", (3,), 0.0), Ablation("conv2", (1,), 0.5))  # not changed


def test_unit_scales_multiply_over_the_ablations_that_name_a_unit():
    scales = unit_scales([Ablation("fc1", (0, 3), 0.5), Ablation("fc1", (3,), 4.0), Ablation("conv1", (2,))])
    assert scales == {("fc1", 0): 0.5, ("fc1", 3): 2.0, ("conv1", 2): 0.0}
    assert unit_scales([]) == {}


def test_a_click_switches_a_unit_off_then_back_on():
    current = toggle_unit([], "fc2", 3)
    assert current == [Ablation("fc2", (3,), 0.0)]
    current = toggle_unit(current, "fc2", 7)
    assert current == [Ablation("fc2", (3, 7), 0.0)]  # merged into the layer's entry
    current = toggle_unit(current, "conv2", 1)
    assert current == [Ablation("fc2", (3, 7), 0.0), Ablation("conv2", (1,), 0.0)]
    current = toggle_unit(current, "fc2", 3)
    assert current == [Ablation("fc2", (7,), 0.0), Ablation("conv2", (1,), 0.0)]
    current = toggle_unit(current, "fc2", 7)
    assert current == [Ablation("conv2", (1,), 0.0)]  # an entry left without units goes


def test_a_click_on_a_scaled_unit_switches_it_back_on_and_keeps_the_others_scaled():
    current = [Ablation("fc2", (1, 2), 0.5)]
    assert toggle_unit(current, "fc2", 2) == [Ablation("fc2", (1,), 0.5)]
    assert toggle_unit(current, "fc2", 4) == [Ablation("fc2", (1, 2), 0.5), Ablation("fc2", (4,), 0.0)]


def test_a_selection_switches_units_off_and_leaves_the_ones_already_named_alone():
    current = [Ablation("fc1", (0,), 0.5), Ablation("fc2", (9,), 0.0)]
    result = switch_off(current, [("fc1", 0), ("fc1", 1), ("fc2", 3), ("fc2", 9), ("conv1", 4)])
    assert result == [
        Ablation("fc1", (0,), 0.5),
        Ablation("fc2", (3, 9), 0.0),
        Ablation("fc1", (1,), 0.0),
        Ablation("conv1", (4,), 0.0),
    ]
    assert switch_off(current, []) == current


def test_graph_units_reads_customdata_without_repeats_and_names_whole_layer_nodes():
    event = {
        "points": [
            {"curveNumber": 7, "customdata": ["fc1", 5]},
            {"curveNumber": 9, "customdata": ["fc1", 5]},  # the cross over the same node
            {"curveNumber": 3, "customdata": ["conv1", -1]},  # a collapsed layer
            {"curveNumber": 8, "customdata": ["fc2", 0]},
            {"curveNumber": 1},  # an edge or anything without customdata
        ]
    }
    assert graph_units(event) == ([("fc1", 5), ("fc2", 0)], ["conv1"])
    assert graph_units(None) == ([], [])
    assert graph_units({"points": []}) == ([], [])


def test_crosses_sit_on_the_nodes_of_switched_off_units():
    columns = [("input", 1, False), ("conv1", 16, False), ("fc1", 4, True)]
    trace = ablated_trace(columns, [Ablation("fc1", (0, 3)), Ablation("conv1", (2,), 0.5), Ablation("fc1", (1,), 2.0)])
    assert [list(c) for c in trace.customdata] == [["conv1", -1], ["fc1", 0], ["fc1", 1], ["fc1", 3]]
    assert list(trace.x) == [1.0, 2.0, 2.0, 2.0]
    # network_figure's layout: units top to bottom at 1 - (u + 0.5) / n, a collapsed layer's node at 0.5
    assert list(trace.y) == [0.5, 0.875, 0.625, 0.125]
    assert "switched off" in trace.hovertext[1] and "× 2" in trace.hovertext[2]
    assert trace.marker.color[1] != trace.marker.color[2]  # zeroed and scaled units look different
    assert len(ablated_trace(columns, []).x) == 0
    assert len(ablated_trace(columns, [Ablation("fc1", (40,))]).x) == 0  # a unit the column does not have
