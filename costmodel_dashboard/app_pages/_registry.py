"""The dashboard's pages, in menu order (app.py builds st.navigation from this; pages link by file)."""

PAGES = {
    "Estimate": [
        {"file": "app_pages/home.py", "title": "Start here", "url": "home", "default": True, "icon": ":material/home:"},
        {"file": "app_pages/estimate.py", "title": "Estimate", "url": "estimate", "icon": ":material/calculate:"},
        {"file": "app_pages/compare.py", "title": "Compare", "url": "compare", "icon": ":material/compare_arrows:"},
    ],
    "Plan": [
        {"file": "app_pages/plan_training.py", "title": "Plan training", "url": "plan-training", "icon": ":material/model_training:"},
        {"file": "app_pages/plan_serving.py", "title": "Plan serving", "url": "plan-serving", "icon": ":material/rocket_launch:"},
    ],
    "Measure": [
        {"file": "app_pages/profile.py", "title": "Profile", "url": "profile", "icon": ":material/timer:"},
    ],
    "Keep": [
        {"file": "app_pages/scenarios.py", "title": "Scenarios", "url": "scenarios", "icon": ":material/folder_open:"},
    ],
    "Learn": [
        {"file": "app_pages/learn.py", "title": "Learn", "url": "learn", "icon": ":material/school:"},
    ],
}
