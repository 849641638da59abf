//! The store contract: rules every backend must keep. Each test gets a fresh database.
//! Every test runs against every backend: the `contract!` list at the end generates
//! `pg::<test>` and `sqlite::<test>`; a new backend joins by adding a [`Backend`] variant.

mod authority;
mod batches;
mod dispatch;
mod events;
mod firing;
mod fleet;
mod limits;
mod listing;
mod ops;
mod records;
mod results;
mod retention;
mod sessions;
mod world;
mod zips;

use authority::*;
use batches::*;
use dispatch::*;
use events::*;
use firing::*;
use fleet::*;
use limits::*;
use listing::*;
use ops::*;
use records::*;
use results::*;
use retention::*;
use sessions::*;
use world::Backend;
use zips::*;

/// Generates one `#[tokio::test]` per backend for each contract test.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod pg {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Pg).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
    };
}

contract!(
    leases_highest_priority_first_then_oldest,
    a_lease_answers_what_running_the_task_takes,
    delayed_tasks_wait_and_clusters_are_separate,
    paused_code_holds_its_tasks_until_resumed,
    a_pause_holds_tasks_queued_or_requeued_into_it,
    resuming_while_tasks_are_queued_leaves_none_behind,
    code_max_concurrency_makes_tasks_wait_not_fail,
    project_concurrency_limit_holds_across_concurrent_leasers,
    a_limited_backlog_drains_in_priority_order_one_slot_at_a_time,
    a_later_higher_priority_task_of_a_limited_code_goes_first,
    tasks_a_schedule_or_a_webhook_queues_for_a_limited_code_run_at_once,
    a_limit_set_or_lifted_applies_to_the_queued_backlog,
    cancels_requeues_and_delays_do_not_strand_a_limited_backlog,
    workers_and_producers_at_once_never_exceed_a_code_limit,
    a_stale_attempt_cannot_overwrite_a_newer_one,
    concurrent_completions_are_each_answered_for_themselves,
    expired_leases_are_retried_then_marked_killed,
    a_leased_task_reads_as_preparing_then_running,
    heartbeats_keep_a_lease_alive,
    cancelling_queued_and_running_tasks,
    failures_with_retries_left_queue_linked_retries,
    batch_enqueue_is_all_or_nothing,
    log_chunks_are_ordered_idempotent_and_capped,
    eight_concurrent_leasers_lease_a_thousand_tasks_exactly_once,
    tenants_cannot_see_each_other,
    code_resource_limits_round_trip,
    active_schedules_are_limited_per_project,
    after_downtime_run_once_fires_once_and_catch_up_fires_every_slot,
    run_times_end_at_and_pause_stop_firing,
    an_update_of_the_timing_moves_the_next_slot,
    an_update_removes_the_label_and_limits_only_when_told,
    a_schedule_that_cannot_fire_stops_no_other,
    a_schedule_with_a_huge_stored_cluster_still_fires,
    a_task_with_a_huge_stored_cluster_is_reaped,
    delayed_tasks_are_found_for_waking_runners,
    webhooks_and_deduplicated_deliveries,
    every_completion_writes_exactly_one_event,
    failures_write_one_event_per_attempted_task,
    cancels_write_one_event_per_task,
    the_reaper_writes_events_for_the_tasks_it_ends,
    claimed_events_go_to_one_consumer_until_their_claim_runs_out,
    queue_depths_count_due_unleased_tasks_deepest_first,
    batch_items_are_tasks_and_a_failed_item_still_reduces_once,
    max_concurrency_releases_one_parked_item_per_finished_one,
    a_batch_past_the_queued_cap_is_refused_whole,
    concurrent_fan_ins_queue_one_reduce,
    an_exceeded_tolerance_fails_the_batch_and_cancels_the_rest,
    a_batch_without_reduce_completes_and_cancel_stops_the_rest,
    batches_are_all_or_nothing_and_per_project,
    quotas_refuse_enqueues_past_the_cap_and_the_rate_writing_nothing,
    results_are_fenced_and_scoped_to_their_project,
    task_tokens_live_while_their_attempt_runs,
    a_task_token_never_outlives_the_task_timeout,
    children_carry_their_parent_and_depth_counts_ancestors,
    only_the_runner_holding_a_lease_may_act_on_it,
    a_requeued_task_runs_before_a_backlog_queued_after_it,
    runner_tokens_register_runners_and_revoking_ends_their_authority,
    zips_go_when_no_task_needs_them,
    a_draining_runner_drains_once_its_last_lease_ends,
    runners_long_silent_and_idle_are_forgotten,
    retention_deletes_exactly_what_ended_before_the_cutoff_while_leasing_goes_on,
    retention_applies_a_projects_own_days_else_the_default,
    retention_keeps_a_running_batchs_tasks_and_deletes_an_ended_batch_with_its_last,
    every_list_filter_answers_its_tasks_newest_first_by_cursor_or_page,
    sessions_end_at_logout_or_expiry_and_are_not_api_tokens,
);
