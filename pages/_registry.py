"""The dashboard's pages, in menu order (app.py builds st.navigation from this; pages link by file)."""

PAGES = {
    "Estimate": [
        {"file": "pages/home.py", "title": "Start here", "url": "home", "default": True, "icon": ":material/home:"},
        {"file": "pages/estimate.py", "title": "Estimate", "url": "estimate", "icon": ":material/calculate:"},
        {"file": "pages/compare.py", "title": "Compare", "url": "compare", "icon": ":material/compare_arrows:"},
    ],
    "Plan": [
        {"file": "pages/plan_training.py", "title": "Plan training", "url": "plan-training", "icon": ":material/model_training:"},
        {"file": "pages/plan_serving.py", "title": "Plan serving", "url": "plan-serving", "icon": ":material/rocket_launch:"},
    ],
    "Measure": [
        {"file": "pages/profile.py", "title": "Profile", "url": "profile", "icon": ":material/timer:"},
    ],
    "Keep": [
        {"file": "pages/scenarios.py", "title": "Scenarios", "url": "scenarios", "icon": ":material/folder_open:"},
    ],
    "Learn": [
        {"file": "pages/learn.py", "title": "Learn", "url": "learn", "icon": ":material/school:"},
    ],
}
